"""Rank-0 run logs: steps.csv (training loss every log_interval steps), epochs.csv + epochs.jsonl
(evaluation per epoch) and curves.png (loss and accuracy against step)."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

STEP_FIELDS = ("step", "epoch", "loss", "lr", "img_per_s")


class CsvLog:
    """A CSV file of rows with a 'step' column, appended to as a run goes (also used by medseg)."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def append(self, row: dict, fields=None) -> None:
        new = not self.path.exists()
        with open(self.path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(fields or row), extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(row)

    def read(self) -> list[dict]:
        if not self.path.exists():
            return []
        with open(self.path, newline="") as f:
            return list(csv.DictReader(f))

    def truncate_after(self, step: int) -> None:
        """A resumed run drops the rows its interrupted predecessor wrote after the checkpoint."""
        rows = self.read()
        if rows:
            with open(self.path, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(r for r in rows if int(r["step"]) <= step)


class RunLog:
    def __init__(self, out: Path):
        self.out = Path(out)
        self.steps = CsvLog(self.out / "steps.csv")
        self.epochs = CsvLog(self.out / "epochs.csv")
        self.epochs_jsonl = self.out / "epochs.jsonl"

    def step(self, step: int, epoch: int, loss: float, lr: float, img_per_s: float) -> None:
        self.steps.append(dict(zip(STEP_FIELDS, (step, epoch, loss, lr, img_per_s))))

    def epoch(self, step: int, epoch: int, metrics: dict) -> None:
        row = {"step": step, "epoch": epoch, **metrics}
        with open(self.epochs_jsonl, "a") as f:
            f.write(json.dumps(row) + "\n")
        self.epochs.append(row)

    def truncate_after(self, step: int) -> None:
        """A resumed run drops the rows its interrupted predecessor wrote after the checkpoint."""
        self.steps.truncate_after(step)
        self.epochs.truncate_after(step)
        if self.epochs_jsonl.exists():
            kept = [line for line in self.epochs_jsonl.read_text().splitlines()
                    if line.strip() and json.loads(line)["step"] <= step]
            self.epochs_jsonl.write_text("".join(line + "\n" for line in kept))

    def plot(self, title: str = "") -> Path:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        steps = self.steps.read()
        epochs = self.epochs.read()
        fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
        finite = [r for r in steps if math.isfinite(float(r["loss"]))]
        ax_loss.plot([int(r["step"]) for r in finite], [float(r["loss"]) for r in finite], label="train loss")
        for key, style in (("val_loss", "o-"), ("ema_loss", "s--")):
            pts = [(int(r["step"]), float(r[key])) for r in epochs if r.get(key) not in (None, "")]
            if pts:
                ax_loss.plot(*zip(*pts), style, label=key.replace("_", " "))
        ax_loss.set_xlabel("step")
        ax_loss.set_ylabel("loss")
        ax_loss.legend()
        for key, style in (("val_top1", "o-"), ("ema_top1", "s--"), ("val_top5", "^:")):
            pts = [(int(r["step"]), float(r[key])) for r in epochs if r.get(key) not in (None, "")]
            if pts:
                ax_acc.plot(*zip(*pts), style, label=key.replace("_", " "))
                ax_acc.annotate(f"{pts[-1][1]:.2f}", pts[-1], textcoords="offset points", xytext=(4, -10))
        ax_acc.set_xlabel("step")
        ax_acc.set_ylabel("accuracy (%)")
        ax_acc.legend()
        fig.suptitle(title)
        fig.tight_layout()
        path = self.out / "curves.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return path
