"""SavedModel export: `embed`, `embed_track` and `tag` signatures, plus the encoder as .keras."""

from mssl_tf.export.saved_model import (
                                        ExportedModel,
                                        build_archive,
                                        describe,
                                        export_encoder,
                                        export_run,
                                        load_probe,
)

__all__ = ["ExportedModel", "build_archive", "describe", "export_encoder", "export_run",
           "load_probe"]
