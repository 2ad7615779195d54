"""Example solver of a new isct trial project: mean gradient through a fixed orifice.

isct runs it once per patient and arm (``model: {name: external}`` in ../config.yaml): it
reads the JSON file isct rendered from the config's ``input_files`` template and writes the
declared outputs as JSON. Replace it with your own solver, in any language: an executable
that reads an input file and writes an output file is all isct needs.

Mean systolic flow Q = SVi x BSA / ejection time (mL/s); mean velocity through the orifice
v = Q / EOA; mean gradient = rho v^2 / 2 (simplified Bernoulli, blood density 1050 kg/m3),
in mmHg (1 mmHg = 133.322 Pa).
"""

import json
import sys

RHO_BLOOD_KG_M3 = 1050.0
PA_PER_MMHG = 133.322

input_file, output_file = sys.argv[1], sys.argv[2]
with open(input_file) as fh:
    case = json.load(fh)

flow_ml_s = case["svi_ml_m2"] * case["bsa_m2"] / case["ejection_time_s"]
velocity_m_s = flow_ml_s * 1e-6 / (case["eoa_cm2"] * 1e-4)
gradient_mmhg = 0.5 * RHO_BLOOD_KG_M3 * velocity_m_s**2 / PA_PER_MMHG

with open(output_file, "w") as fh:
    json.dump({"mean_flow_ml_s": flow_ml_s, "mean_gradient_mmhg": gradient_mmhg}, fh)
