"""Resolves the Apache Kafka broker jars from Maven Central into the cache, once.

Kafka's pom leaves the logging backend out, so log4j-core and log4j-slf4j-impl are added.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from streams.paths import cache_dir

POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.sightline</groupId>
  <artifactId>kafka-broker-dist</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>{kafka}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>{log4j}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>{log4j}</version>
    </dependency>
  </dependencies>
</project>
"""


class KafkaDistError(RuntimeError):
    pass


def kafka_libs(kafka_version: str, log4j_version: str, cache: Path | None = None) -> Path:
    """Folder holding every broker jar; resolved with `mvn dependency:copy-dependencies`."""
    root = (cache or cache_dir()) / "kafka" / f"{kafka_version}-log4j{log4j_version}"
    libs = root / "libs"
    marker = root / ".complete"
    if marker.exists():
        return libs
    if shutil.which("mvn") is None:
        raise KafkaDistError("Maven (mvn) is needed once to fetch the Kafka broker; run `make setup`")
    root.mkdir(parents=True, exist_ok=True)
    (root / "pom.xml").write_text(POM.format(kafka=kafka_version, log4j=log4j_version))
    tmp = root / "libs.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    result = subprocess.run(
        ["mvn", "-q", "-B", "dependency:copy-dependencies", f"-DoutputDirectory={tmp}"],
        cwd=root,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise KafkaDistError(f"mvn could not resolve Kafka {kafka_version}:\n{result.stdout[-3000:]}")
    shutil.rmtree(libs, ignore_errors=True)
    tmp.rename(libs)
    marker.touch()
    return libs
