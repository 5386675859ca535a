"""From stored instances to work: completion detection, routing rules, the router loop."""
