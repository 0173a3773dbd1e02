"""The machinery checks call; engines know nothing of plans, stores or reports."""
