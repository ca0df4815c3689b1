"""Evaluation: frozen-encoder features, linear/MLP probes, CLMR's test protocol, reports.

Importing this package registers the gin entry point `run_probe` and the `ProbeMonitor`
callback. `metrics` is backend-free (numpy + scikit-learn).
"""

from mssl_tf.eval import embed, metrics, monitor, optimizer, probe, schedule, train_head
from mssl_tf.eval.metrics import accuracy, probe_metrics, tag_metrics
from mssl_tf.eval.monitor import ProbeMonitor
from mssl_tf.eval.optimizer import TorchAdam
from mssl_tf.eval.probe import probe_encoder, run_probe
