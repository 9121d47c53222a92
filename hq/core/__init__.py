"""HQ's pure core: identity stitching, touchpoints, metric definitions, recommendations, the intake
rules and the values they exchange. No I/O, no global state; time is passed in."""
