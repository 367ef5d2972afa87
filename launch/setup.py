from glob import glob

from setuptools import find_packages, setup

PACKAGE = "dexndm"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
        ("share/" + PACKAGE, ["package.xml"]),
        ("share/" + PACKAGE + "/launch", glob("launch/*.launch.py")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="DexNDM developers",
    maintainer_email="dexndm@example.org",
    description="DexNDM apps: launch files and the dexndm CLI.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "dexndm = dexndm.cli:main",
            "selfcheck_echo = dexndm.selfcheck_nodes:echo_main",
            "selfcheck_probe = dexndm.selfcheck_nodes:probe_main",
        ],
    },
)
