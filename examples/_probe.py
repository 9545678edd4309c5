import time
from graphxfer import datasets
for f in (datasets.load_student_performance, datasets.load_oulad, datasets.load_diabetes_130):
    t=time.perf_counter()
    c = f()
    print(f.__name__, len(c), "persons", c.n_persons, "load s", round(time.perf_counter()-t,1))
    print([ (col.name, col.kind, col.role) for col in c.schema.columns])
    print(c.groups.value_counts())
    print(c.data.groupby("site")[c.schema.target.name].mean())
o = datasets.load_oulad("AAA")
print(o.data.id_student.duplicated().sum() if "id_student" in o.data else "no id_student col")
