from setuptools import find_packages, setup

PACKAGE = "dexndm_collect"

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
    description="Chaos Box collection: replay sources, the replay-and-log node and the rosbag2 writer.",
    license="Apache-2.0",
    entry_points={"console_scripts": ["chaos_box = dexndm_collect.chaos_box_node:main"]},
)
