"""Neural renderers over the rig: mouths repainted by a trained model, rig clips to train it on,
and the landmark pass over a person's video that a video model learns from."""
