"""Numbers shared across the package, free of TensorFlow and Keras imports.

The Keras-only core (models, augment), the TensorFlow side (data, train, export) and the
conversion tools all read them from here, so a value is defined once.
"""

SAMPLE_RATE = 22050  # Hz: every dataset is resampled to it (CLMR, the thesis).
CROP_LEN = 59049  # 3**10 samples (2.68 s at 22,050 Hz): the SampleCNN reduces it to one frame.
REFERENCE_BATCH = 256  # the batch a base learning rate refers to (lr = base * batch / 256).
SHARD_BYTES = 200 * 2**20  # target size of a TFRecord shard (tf.data's guide: 100-200 MB).

# The TFRecord schema and the files of a converted dataset.
SCHEMA_VERSION = 1
SPLITS = ("train", "valid", "test")
MANIFEST_NAME = "manifest.json"
SHARD_PATTERN = "{dataset}-{split}-{index:05d}-of-{count:05d}.tfrecord"
SHARD_REGEX = (r"^(?P<dataset>.+)-(?P<split>train|valid|test)-(?P<index>\d{5})-of-"
               r"(?P<count>\d{5})\.tfrecord$")
