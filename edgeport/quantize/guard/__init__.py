"""The proof of an int8 model: verification, fidelity per output kind, the tolerance verdict, sensitivity."""
