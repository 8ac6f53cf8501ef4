"""Reference geography of Peru: real cities and Lima districts with their coordinates.

Used by the synthetic generator (where merchants and customers live) and by import, which
resolves free-text city names to coordinates so distance features work on real files too.
Coordinates are city centres (WGS84, decimal degrees); populations are rounded census figures
used only as sampling weights.
"""

from __future__ import annotations

import unicodedata

import numpy as np
import pandas as pd

# (place, city, department, lat, lon, population in thousands)
# Lima's districts are their own places so that "Miraflores" and "Lima" both resolve.
PLACES: tuple[tuple[str, str, str, float, float, int], ...] = (
    ("Cercado de Lima", "Lima", "Lima", -12.0464, -77.0428, 270),
    ("Miraflores", "Lima", "Lima", -12.1211, -77.0297, 100),
    ("San Isidro", "Lima", "Lima", -12.0970, -77.0360, 60),
    ("Barranco", "Lima", "Lima", -12.1490, -77.0210, 35),
    ("Santiago de Surco", "Lima", "Lima", -12.1460, -76.9920, 330),
    ("La Molina", "Lima", "Lima", -12.0860, -76.9350, 140),
    ("San Borja", "Lima", "Lima", -12.1080, -77.0010, 115),
    ("Jesús María", "Lima", "Lima", -12.0760, -77.0490, 75),
    ("Lince", "Lima", "Lima", -12.0840, -77.0360, 50),
    ("Pueblo Libre", "Lima", "Lima", -12.0760, -77.0630, 80),
    ("Magdalena del Mar", "Lima", "Lima", -12.0910, -77.0710, 60),
    ("San Miguel", "Lima", "Lima", -12.0770, -77.0910, 155),
    ("Chorrillos", "Lima", "Lima", -12.1690, -77.0230, 330),
    ("Los Olivos", "Lima", "Lima", -11.9910, -77.0700, 390),
    ("San Juan de Lurigancho", "Lima", "Lima", -11.9800, -77.0000, 1100),
    ("Ate", "Lima", "Lima", -12.0260, -76.9200, 650),
    ("Callao", "Callao", "Callao", -12.0566, -77.1181, 450),
    ("Arequipa", "Arequipa", "Arequipa", -16.4090, -71.5375, 1000),
    ("Trujillo", "Trujillo", "La Libertad", -8.1116, -79.0287, 900),
    ("Chiclayo", "Chiclayo", "Lambayeque", -6.7714, -79.8409, 600),
    ("Piura", "Piura", "Piura", -5.1945, -80.6328, 500),
    ("Iquitos", "Iquitos", "Loreto", -3.7491, -73.2538, 450),
    ("Cusco", "Cusco", "Cusco", -13.5320, -71.9675, 450),
    ("Huancayo", "Huancayo", "Junín", -12.0651, -75.2049, 450),
    ("Chimbote", "Chimbote", "Áncash", -9.0745, -78.5936, 400),
    ("Pucallpa", "Pucallpa", "Ucayali", -8.3791, -74.5539, 350),
    ("Tacna", "Tacna", "Tacna", -18.0066, -70.2463, 300),
    ("Juliaca", "Juliaca", "Puno", -15.5007, -70.1333, 300),
    ("Ica", "Ica", "Ica", -14.0678, -75.7286, 300),
    ("Cajamarca", "Cajamarca", "Cajamarca", -7.1638, -78.5003, 250),
    ("Ayacucho", "Ayacucho", "Ayacucho", -13.1588, -74.2239, 200),
    ("Huánuco", "Huánuco", "Huánuco", -9.9306, -76.2422, 200),
    ("Puno", "Puno", "Puno", -15.8402, -70.0219, 150),
    ("Tarapoto", "Tarapoto", "San Martín", -6.4825, -76.3654, 150),
    ("Huaraz", "Huaraz", "Áncash", -9.5278, -77.5278, 130),
    ("Tumbes", "Tumbes", "Tumbes", -3.5669, -80.4515, 120),
    ("Puerto Maldonado", "Puerto Maldonado", "Madre de Dios", -12.5933, -69.1891, 90),
    ("Abancay", "Abancay", "Apurímac", -13.6339, -72.8814, 70),
    ("Moquegua", "Moquegua", "Moquegua", -17.1956, -70.9353, 60),
    ("Chachapoyas", "Chachapoyas", "Amazonas", -6.2317, -77.8690, 30),
)

# Peru's bounding box, for sanity checks on coordinates.
PERU_BBOX = {"lat_min": -18.4, "lat_max": -0.0, "lon_min": -81.4, "lon_max": -68.6}


def normalize_place(name: str) -> str:
    """Lower-case, accent-free, single-spaced form used to match place names.

    Must agree with the SQL expression in `place_key_sql` so Python and DuckDB match alike.
    """
    decomposed = unicodedata.normalize("NFKD", name)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(plain.lower().split())


def place_key_sql(expr: str) -> str:
    """SQL that normalizes a place-name expression the way `normalize_place` does.

    Only the first comma-separated part is used, so "Miraflores, Lima" and "Cusco, Peru" resolve.
    `expr` must be a trusted SQL expression (a quoted identifier), never user text.
    """
    return (
        f"lower(trim(regexp_replace(strip_accents(split_part(CAST({expr} AS VARCHAR), ',', 1)),"
        f" '\\s+', ' ', 'g')))"
    )


def places_frame() -> pd.DataFrame:
    """The reference places as a frame with a normalized key column."""
    frame = pd.DataFrame(
        PLACES, columns=["place", "city", "department", "lat", "lon", "population_k"]
    )
    frame["place_key"] = frame["place"].map(normalize_place)
    return frame


def lookup_frame() -> pd.DataFrame:
    """Every name a place answers to, with coordinates: its own name, and "Lima" for the capital.

    Every city except Lima is a place of the same name; Lima is split into districts, so the
    bare city name resolves to its historic centre.
    """
    places = places_frame()
    lima = places[places["place"] == "Cercado de Lima"].assign(place_key="lima")
    columns = ["place_key", "place", "city", "department", "lat", "lon"]
    return pd.concat([places[columns], lima[columns]], ignore_index=True)


EARTH_RADIUS_KM = 6371.0088


def haversine_km(lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray) -> np.ndarray:
    """Great-circle distance in km, vectorized."""
    lat1, lon1, lat2, lon2 = (np.radians(np.asarray(a, dtype=float)) for a in (lat1, lon1, lat2, lon2))
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))

