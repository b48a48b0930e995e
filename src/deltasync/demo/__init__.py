"""The demo: a market scenario against a local cluster of node processes, or in-process.

- ``runner``: the entry points (``run_cluster_demo``, ``run_in_process``);
- ``cluster_demo``: the cluster run (set-up, timeline, the end), ``scenario`` its
  schedule, genesis and instruments, ``cluster`` the node processes and the watch
  over them, ``clock`` its clocks;
- ``oracle``: the scenario's price sources (the one demo oracle,
  ``node.demo_oracle``, relayed through the API);
- ``agents``, ``subscriber``, ``board``, ``api``, ``metrics``: the traders, the
  WebSocket subscriber, the market data they share, their access to the cluster
  and what they measured;
- ``audit``: the offline replay of a node's log (``node.chain``);
- ``progress``, ``summary``: the live view and the summary;
- ``in_process``: the single-process scenario.
"""

from deltasync.demo.audit import audit_node
from deltasync.demo.cluster_demo import ClusterDemoOptions
from deltasync.demo.runner import run_cluster_demo, run_in_process

__all__ = ["ClusterDemoOptions", "audit_node", "run_cluster_demo", "run_in_process"]
