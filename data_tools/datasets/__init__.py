"""Dataset readers: each lists its tracks (path, id, split, label vector) as a `common.Listing`.

fma, gtzan, mtat and folder follow the layouts and metadata files of the datasets as downloaded;
splits/ holds split lists shipped with the package (GTZAN fault-filtered).
"""
