"""The README's model and weights tables are the specs, generated, not retyped."""

from pathlib import Path

from keras_cnn.models import specs

README = Path(__file__).resolve().parents[1] / "README.md"


def _block(text, tag):
    start = text.index(f"<!-- {tag}:")
    start = text.index("\n", start) + 1
    return text[start:text.index(f"<!-- /{tag} -->")].strip()


def test_readme_model_table_is_generated_from_the_specs():
    assert _block(README.read_text(), "zoo-table") == specs.zoo_markdown(), (
        "README's model table differs from the specs: paste keras_cnn.models.specs.zoo_markdown()"
    )


def test_readme_weights_table_is_generated_from_the_specs():
    assert _block(README.read_text(), "weights-table") == specs.weights_markdown(), (
        "README's weights table differs from the specs: paste keras_cnn.models.specs.weights_markdown()"
    )


def test_every_network_and_every_weights_record_is_in_the_tables():
    text = README.read_text()
    for name in specs.list_models():
        assert f"| `{name}` |" in text
    for name in specs.list_weights():
        assert f"| `{name}` |" in text
