"""SavedModel export: `embed`, `embed_track`, `embed_chunks` (and `tag`, `tag_chunks`) signatures,
plus the encoder as .keras."""

from mssl_tf.export.saved_model import (
                                        ExportedModel,
                                        build_archive,
                                        check_probe_matches,
                                        describe,
                                        export_encoder,
                                        export_run,
                                        load_probe,
)

__all__ = ["ExportedModel", "build_archive", "check_probe_matches", "describe",
           "export_encoder", "export_run", "load_probe"]
