import sys

from keras_cnn.cli import main

sys.exit(main())
