"""MR lesion segmentation (3D MONAI UNet) → a binary SEG."""
