# Entry points for users and CI. Each target installs what is missing first.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=RelWithDebInfo
ACTORS ?= 2

.PHONY: setup configure build test demo results clean cuda

setup:
	./scripts/setup.sh

configure: setup
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)

build: configure
	cmake --build $(BUILD) -j$(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS) --timeout 600

# Trains from a small pretrained base (built once), then prints the trained
# policy's evaluation beside the base's (orchestration/demo.sh).
demo: build
	BUILD=$(BUILD) ACTORS=$(ACTORS) ./orchestration/demo.sh

# The issue-4 experiment: base, Ground-R1, direct-answer GRPO and SRPO, each
# evaluated on 500 held-out questions -> runs/results/summary.json
# (orchestration/results.sh; docs/results.md).
results: build
	BUILD=$(BUILD) ./orchestration/results.sh

# Compiles the CUDA/NCCL code paths (nothing GPU-only runs without a GPU).
cuda: setup
	cmake -S . -B $(BUILD)-cuda $(CMAKE_FLAGS) -DGR1_WITH_CUDA=ON
	cmake --build $(BUILD)-cuda -j$(JOBS)
	cd $(BUILD)-cuda && ctest --output-on-failure -L gpu

clean:
	rm -rf $(BUILD) $(BUILD)-cuda
