"""The node: wires consensus, storage, net and the state machine together."""
