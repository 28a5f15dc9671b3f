// PyTorch's antialiased bicubic resize (F.interpolate(mode="bicubic",
// antialias=True, align_corners=False) with an output size), which DINOv2's
// models with registers use to resize their position embeddings
// (docs/ENGINE.md). CPU only, inference only.
#ifndef DINO_RESAMPLE_AA_H
#define DINO_RESAMPLE_AA_H

// in (IH, IW, C) channel-last, out (OH, OW, C). Separable as PyTorch: along
// the width first (into a temporary), then along the height; a dimension whose
// size does not change is copied.
void bicubic_aa_forward(float *out, const float *in, int IH, int IW, int OH, int OW, int C);

#endif
