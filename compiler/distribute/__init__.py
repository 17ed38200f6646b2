"""fc.distribute: data-parallel training over MPI, with Horovod's names.

    import flowc as fc
    fc.distribute.rank(), fc.distribute.size()        # 0 and 1 without mpiexec
    opt = fc.distribute.DistributedOptimizer(fc.train.GradientDescentOptimizer(0.1))
    sync = fc.distribute.broadcast_global_variables(root_rank=0)

`flowc run -n N script.py` starts N ranks of a script (compiler/cli.py).
"""

from .ops import allreduce, broadcast
from .optimizer import DistributedOptimizer, broadcast_global_variables
from .parameter_server import DownpourReport, DownpourTrainer
from .stats import CommunicationStats, communication_stats
from .topology import init, local_rank, local_size, rank, size

__all__ = ["CommunicationStats", "DistributedOptimizer", "DownpourReport", "DownpourTrainer", "allreduce", "communication_stats", "broadcast", "broadcast_global_variables", "init", "local_rank",
           "local_size", "rank", "size"]
