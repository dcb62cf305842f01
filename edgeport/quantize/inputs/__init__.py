"""What a quantization starts from: the fp32 model checked, its graph walked, its calibration read."""
