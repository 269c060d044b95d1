"""Result tables, plots and example images."""
