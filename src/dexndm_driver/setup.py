from setuptools import find_packages, setup

PACKAGE = "dexndm_driver"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
        ("share/" + PACKAGE, ["package.xml"]),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="DexNDM developers",
    maintainer_email="dexndm@example.org",
    description="LEAP hand driver: Dynamixel, emulated-bus and simulated backends behind one hand_driver node.",
    license="Apache-2.0",
    entry_points={"console_scripts": [
        "hand_driver = dexndm_driver.hand_driver_node:main",
        "dexndm_bus_emulator = dexndm_driver.emulator.__main__:main",
    ]},
)
