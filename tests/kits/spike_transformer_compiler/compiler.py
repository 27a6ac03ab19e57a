class CompiledModel:
    def __init__(self, energy_per_inference=0.0):
        self.energy_per_inference = energy_per_inference


class SpikeCompiler:
    def __init__(self, target="loihi3", optimization_level=2, time_steps=4):
        self.target = target
        self.optimization_level = optimization_level
        self.time_steps = time_steps

    def compile(self, model, input_shape, chip_config=None, profile_energy=False):
        if not input_shape:
            raise ValueError("input_shape is required")
        return CompiledModel(energy_per_inference=0.5)
