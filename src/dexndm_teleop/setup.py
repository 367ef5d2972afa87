from setuptools import find_packages, setup

PACKAGE = "dexndm_teleop"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    package_data={PACKAGE: ["web/*.html", "web/*.js", "web/*.css"]},
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
        ("share/" + PACKAGE, ["package.xml"]),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="DexNDM developers",
    maintainer_email="dexndm@example.org",
    description="Quest 3 WebXR teleoperation: server, page, arm and axis mapping, teleop node.",
    license="Apache-2.0",
    entry_points={"console_scripts": ["teleop = dexndm_teleop.teleop_node:main"]},
)
