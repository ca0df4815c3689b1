"""The thesis' published probe numbers (Hesse & Löf 2023), for reports beside our own.

Every entry is (ROC-AUC, PR-AUC) as ((linear, mlp), (linear, mlp)), x100, probed on MTAT;
`None` where the thesis gives no number. Transcribed from reference/thesis.txt: Table 4.1
(transfer), A.1 (epochs, FMA pre-training, representation 512), A.2 (representation size,
1,000 epochs), B.1 (VICReg batch size, 1,000 epochs), B.2 (projectors, 1,000 epochs).
"""

from __future__ import annotations

Pair = tuple[float | None, float | None]
Scores = tuple[Pair, Pair]  # (ROC-AUC (linear, mlp), PR-AUC (linear, mlp))

# Table 4.1: (method, pre-training dataset, representation size) -> scores. "*" = supervised.
TABLE_4_1: dict[tuple[str, str, int | None], Scores] = {
    ("MusicCNN*", "MTAT", None): ((89.0, None), (34.9, None)),
    ("SampleCNN*", "MTAT", None): ((88.6, None), (34.4, None)),
    ("CLMR [4]", "MSD", 512): ((88.7, 89.3), (35.6, 36.0)),
    ("CLMR", "GTZAN", 512): ((83.47, 85.02), (27.20, 28.89)),
    ("CLMR", "FMA", 512): ((87.52, 88.12), (33.40, 33.83)),
    ("VICReg", "GTZAN", 512): ((80.56, 81.33), (23.26, 23.32)),
    ("VICReg", "MTAT", 512): ((87.86, 88.87), (34.84, 35.28)),
    ("VICReg", "FMA", 512): ((87.78, 89.15), (34.71, 35.85)),
}

# Table A.1: epochs -> {method: scores}; FMA pre-training, MTAT probe, representation 512.
TABLE_A_1: dict[int, dict[str, Scores]] = {
    300: {"CLMR": ((87.52, 88.12), (33.40, 33.83)), "VICReg": ((87.08, 88.19), (32.24, 33.55))},
    1000: {"CLMR": ((86.83, 87.47), (31.88, 32.55)), "VICReg": ((87.02, 88.35), (32.79, 33.95))},
    3000: {"CLMR": ((86.69, 87.41), (31.46, 32.26)), "VICReg": ((87.73, 88.65), (33.88, 34.80))},
    5000: {"CLMR": ((86.75, 87.39), (31.70, 32.43)), "VICReg": ((87.96, 88.96), (34.40, 35.49))},
    8000: {"CLMR": ((86.22, 87.48), (31.33, 32.73)), "VICReg": ((87.93, 89.14), (34.64, 35.47))},
}

# Table A.2: representation size -> {method: scores}; 1,000 epochs.
TABLE_A_2: dict[int, dict[str, Scores]] = {
    32: {"VICReg": ((77.19, 84.40), (21.46, 27.14)), "CLMR": ((83.01, 84.42), (26.47, 26.73))},
    64: {"VICReg": ((81.08, 86.20), (25.03, 29.87)), "CLMR": ((85.60, 86.32), (30.11, 30.75))},
    128: {"VICReg": ((84.74, 87.01), (28.64, 31.20)), "CLMR": ((86.26, 87.24), (30.77, 31.94))},
    256: {"VICReg": ((86.24, 87.74), (30.87, 33.24)), "CLMR": ((86.96, 87.71), (32.03, 32.81))},
    512: {"VICReg": ((87.21, 88.37), (32.56, 34.03)), "CLMR": ((87.07, 87.82), (32.46, 33.22))},
}

# Table B.1: VICReg global batch size -> scores; representation 512, 1,000 epochs on FMA.
TABLE_B_1: dict[int, Scores] = {
    64: ((84.35, 85.30), (27.46, 28.80)),
    128: ((86.01, 86.99), (29.63, 31.06)),
    256: ((87.21, 87.88), (31.94, 33.15)),
    512: ((87.11, 88.27), (31.88, 33.97)),
    768: ((87.21, 88.37), (32.56, 34.03)),
    1024: ((86.88, 88.21), (32.45, 34.01)),
    1280: ((86.56, 88.29), (32.22, 34.14)),
    1536: ((85.90, 88.32), (31.48, 34.20)),
    1792: ((86.58, 88.26), (32.50, 34.27)),
}

# Table B.2: (backbone objective, projector) -> scores; 1,000 epochs on FMA. The thesis gives no
# MLP numbers for the VICReg backbone with the CLMR projector.
TABLE_B_2: dict[tuple[str, str], Scores] = {
    ("CLMR", "clmr"): ((87.07, 87.82), (32.46, 33.22)),
    ("CLMR", "vicreg"): ((86.81, 87.80), (31.94, 32.92)),
    ("VICReg", "clmr"): ((85.70, None), (30.21, None)),
    ("VICReg", "vicreg"): ((86.97, 88.22), (32.82, 33.71)),
}
