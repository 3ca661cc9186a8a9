"""The leaderboard: tables and charts over the results store. Never imports TensorFlow."""
