"""Put src/ on the path, as it is when a stage runs as `python src/<stage>.py`."""
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
sys.path.insert(0, str(SRC))
