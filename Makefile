# Entry points for users and CI. Each target installs what is missing first.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=RelWithDebInfo
ACTORS ?= 2

.PHONY: setup configure build test demo clean cuda

setup:
	./scripts/setup.sh

configure: setup
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)

build: configure
	cmake --build $(BUILD) -j$(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS) --timeout 600

demo: build
	./$(BUILD)/bin/gr1 launch --config configs/demo.yaml --actors $(ACTORS) --run-dir runs/demo

# Compiles the CUDA/NCCL code paths (nothing GPU-only runs without a GPU).
cuda: setup
	cmake -S . -B $(BUILD)-cuda $(CMAKE_FLAGS) -DGR1_WITH_CUDA=ON
	cmake --build $(BUILD)-cuda -j$(JOBS)
	cd $(BUILD)-cuda && ctest --output-on-failure -L gpu

clean:
	rm -rf $(BUILD) $(BUILD)-cuda
