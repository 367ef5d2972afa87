from setuptools import find_packages, setup

PACKAGE = "dexndm_description"

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
    description="The LEAP hand's single source of truth: joint table, limits, gains, conversions, named axes and wrist orientations, MJCF and scenes. No rclpy.",
    license="Apache-2.0",
    entry_points={"console_scripts": ["dexndm-sim = dexndm_description.cli:main"]},
)
