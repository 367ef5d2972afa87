from glob import glob

from setuptools import find_packages, setup

PACKAGE = "dexndm_policy"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
        ("share/" + PACKAGE, ["package.xml"]),
        ("share/" + PACKAGE + "/models", sorted(glob("models/*.onnx") + glob("models/*.json"))),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="DexNDM developers",
    maintainer_email="dexndm@example.org",
    description="Observation contract, ONNX runtime, the rotation policy node (generalist + residual) and the reality-gap monitor.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "rotation_policy = dexndm_policy.policy_node:main",
            "rotation_monitor = dexndm_policy.monitor_node:main",
            "gap_monitor = dexndm_policy.gap_monitor_node:main",
        ],
    },
)
