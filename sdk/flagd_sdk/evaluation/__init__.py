"""The one flag evaluator shared by the SDK and the server: pure, standard library only."""
