"""Looking at what a model makes: sample metrics with their protocol, the best checkpoint, post-hoc evaluation,
sampling and memorization audits of a saved run, illustrations and image grids."""
