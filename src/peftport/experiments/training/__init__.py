"""experiments/training"""
