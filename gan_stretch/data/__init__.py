from gan_stretch.data.corpus import Corpus, build_teacher, build_true_tempo

__all__ = ["Corpus", "build_true_tempo", "build_teacher"]
