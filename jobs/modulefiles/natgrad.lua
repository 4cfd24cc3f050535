-- Lmod modulefile for an installed natgrad (cmake --install build/release --prefix PREFIX).
-- Set `prefix` below, copy this file to <modulepath>/natgrad/0.1.0.lua, then
-- `module load natgrad`. See docs/cluster.md.
local version = "0.1.0"
local prefix  = "/opt/natgrad/" .. version      -- edit: the --prefix of cmake --install

whatis("Name: natgrad")
whatis("Version: " .. version)
whatis("Description: distributed natural-gradient GLM fitting (MPI + OpenMP)")
help([[
natgrad ]] .. version .. [[: distributed natural-gradient fitting of GLMs.
  natgrad fit --data FILE|gen:SPEC --out DIR      (under mpirun or srun for several ranks)
  CMake: find_package(natgrad) -> natgrad::natgrad
]])

-- The MPI natgrad was built with must be loaded too; uncomment for your site:
-- depends_on("openmpi")

prepend_path("PATH", pathJoin(prefix, "bin"))
prepend_path("CMAKE_PREFIX_PATH", prefix)
-- natgrad installs a static library; this matters only for a -DBUILD_SHARED_LIBS=ON build.
prepend_path("LD_LIBRARY_PATH", pathJoin(prefix, "lib"))
setenv("NATGRAD_ROOT", prefix)
-- OpenBLAS kernels: where `natgrad selftest` warns that OpenBLAS runs an older kernel
-- family than the nodes' CPUs (Debian 12's 0.3.21 on new Xeons), set the value it names
-- (docs/cluster.md, "Which kernels OpenBLAS runs"); only for nodes of that CPU:
-- setenv("OPENBLAS_CORETYPE", "SkylakeX")
