"""Command line: ``python -m coursekit doctor | train NAME [--ship] | train --list``.

``train NAME`` runs a recipe into your own runs folder (``<data folder>/runs/NAME.pt``), which the
lessons then load instead of the shipped checkpoint; ``--ship`` (instructors) rewrites
``checkpoints/NAME.pt`` and its entry in ``checkpoints/registry.json``.

Lesson: lessons/00_tour.ipynb
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``), run the command and return its exit status."""
    parser = argparse.ArgumentParser(prog="python -m coursekit", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("doctor", help="check the environment, data and checkpoints, and say how to fix what is missing")
    train = sub.add_parser("train", help="rebuild a checkpoint with its recipe (see --list)")
    train.add_argument("recipe", nargs="?", help="the recipe to run (see --list)")
    train.add_argument("--list", action="store_true", help="list the recipes and exit")
    ship_help = "instructors: write checkpoints/NAME.pt and update registry.json (default: your runs folder)"
    train.add_argument("--ship", action="store_true", help=ship_help)
    args = parser.parse_args(argv)
    if args.command == "doctor":
        from coursekit import doctor

        return doctor.run()
    import coursekit.recipes  # noqa: F401  (registers every recipe)
    from coursekit.recipes import registry

    recipes = registry.RECIPES
    known = ", ".join(sorted(recipes))
    if args.list:
        for name in sorted(recipes):
            print(f"{name}  {recipes[name].description}")
        return 0
    if args.recipe is None:
        train.error(f"name a recipe to run; known recipes: {known}")
    if args.recipe not in recipes:
        train.error(f"unknown recipe {args.recipe!r}; known recipes: {known}")
    print(f"wrote {registry.run_recipe(args.recipe, ship=args.ship)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
