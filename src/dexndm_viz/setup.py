from setuptools import find_packages, setup

PACKAGE = "dexndm_viz"

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
    description="Live and recorded views of the hand with rerun: forward-kinematics hand model, recorder core, viewer node.",
    license="Apache-2.0",
    entry_points={"console_scripts": ["rerun_viewer = dexndm_viz.viewer_node:main"]},
)
