"""The weights fetcher: downloads a model checkpoint once, verifies it, and says so.

It runs as the command of the operator's download Job (or a node-local init container) in the
operator image, as `python -m mimo_operator.fetcher`. It stands alone on purpose: no Kubernetes
client, no credentials besides the Hub token, so the pod that moves hundreds of gigabytes holds no
power over the cluster. The operator learns what happened from what this process leaves behind
(see `progress`), never from writes the fetcher makes to the API server.
"""
