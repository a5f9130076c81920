import sys

from gan_stretch.errors import GanStretchError
from gan_stretch.train import run

USAGE = "usage: accelerate launch -m gan_stretch.train RECIPE.yaml [key=value ...]"


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("-h", "--help"):
        print(USAGE)
        raise SystemExit(0)
    if not argv:
        print(f"{USAGE}\nerror: give a recipe file", file=sys.stderr)
        raise SystemExit(2)
    try:
        run(argv[0], argv[1:])
    except GanStretchError as e:
        raise SystemExit(f"error: {e}") from None


if __name__ == "__main__":
    main()
