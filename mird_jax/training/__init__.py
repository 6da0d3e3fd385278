"""What runs under jit: losses, the objective, accumulation, the estimators' fit, optimisers,
shardings, the train and eval steps, the diagnostic forward. Reads models only through the
family protocol (models/factory.py); never reads files or the input pipeline."""
