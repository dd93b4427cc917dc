"""The review loop: verdicts on alerts (feedback topic) and the training data built from them."""
