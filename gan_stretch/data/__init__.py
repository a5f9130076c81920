from gan_stretch.data.corpus import build_true_tempo
from gan_stretch.data.manifest import Corpus
from gan_stretch.data.teacher_corpora import build_teacher

__all__ = ["Corpus", "build_true_tempo", "build_teacher"]
