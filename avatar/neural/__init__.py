"""Neural renderers over the rig: mouths repainted by a trained model, and rig clips to train it on."""
