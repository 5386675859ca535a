"""Chest radiograph nodule classification (2D MONAI DenseNet) with a Grad-CAM explanation map."""
