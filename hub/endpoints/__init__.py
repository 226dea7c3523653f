"""Channel endpoints: where messages enter the hub. `ingress` is the one intake every channel uses
(check, then store and queue in one transaction); `file_drop` is the batch-file channel."""
