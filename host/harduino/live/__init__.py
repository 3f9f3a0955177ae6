"""Live prediction: the predictor thread, the dashboard and the terminal mode."""
