"""Reading what a trained model learned: per-base scores, variant effects and motif effects on the user's reads."""
