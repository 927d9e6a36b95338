using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;

namespace EdgeSlm.Benchmarks.Ggml;

/// <summary><c>struct ggml_init_params</c> (ggml.h), passed by value to <c>ggml_init</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct GgmlInitParams
{
    public nuint MemSize;
    public nint MemBuffer;
    public byte NoAlloc; // C bool
}

/// <summary>
/// llama.cpp's libggml-base.so and libggml-cpu.so as LLamaSharp.Backend.Cpu ships them, copied into ggml/ by the
/// project, loaded by path and called through function pointers. Only the few functions the benchmark needs, with
/// the signatures of ggml.h, ggml-backend.h and ggml-cpu.h; handles are opaque pointers.
/// </summary>
internal sealed unsafe class GgmlLibrary
{
    public const int TypeF32 = 0;
    public const int TypeQ4_0 = 2;
    public const int StatusSuccess = 0;

    // ggml-base: context, tensors, graph
    public readonly delegate* unmanaged<GgmlInitParams, nint> Init;
    public readonly delegate* unmanaged<nint, void> Free;
    public readonly delegate* unmanaged<nuint> TensorOverhead;
    public readonly delegate* unmanaged<nuint> GraphOverhead;
    public readonly delegate* unmanaged<nint, int, long, long, nint> NewTensor2D;
    public readonly delegate* unmanaged<nint, nint, nint, nint> MulMat;
    public readonly delegate* unmanaged<nint, nint> NewGraph;
    public readonly delegate* unmanaged<nint, nint, void> BuildForwardExpand;
    public readonly delegate* unmanaged<nint, void*> GetData;
    public readonly delegate* unmanaged<nint, nuint> NBytes;
    public readonly delegate* unmanaged<nint> Version;
    public readonly delegate* unmanaged<nint> Commit;

    // ggml-base: backend API
    public readonly delegate* unmanaged<nint, nint, int> BackendGraphCompute;
    public readonly delegate* unmanaged<nint, void> BackendFree;
    public readonly delegate* unmanaged<nint, nint> BackendGetDevice;
    public readonly delegate* unmanaged<nint, nint> BackendGetDefaultBufferType;
    public readonly delegate* unmanaged<nint, nint> BackendDevBackendReg;
    public readonly delegate* unmanaged<nint, byte*, nint> BackendRegGetProcAddress;
    public readonly delegate* unmanaged<nint, nint> BackendBufferTypeName;
    public readonly delegate* unmanaged<nint, nint, nint> BackendAllocContextTensorsFromBufferType;
    public readonly delegate* unmanaged<nint, void> BackendBufferFree;
    public readonly delegate* unmanaged<nint, void*, nuint, nuint, void> BackendTensorSet;

    // ggml-cpu
    public readonly delegate* unmanaged<void> CpuInit;
    public readonly delegate* unmanaged<nint> BackendCpuInit;
    public readonly delegate* unmanaged<nint, int, void> BackendCpuSetThreads;

    private readonly nint _cpu;

    private GgmlLibrary(string directory, string variant, nint baseLibrary, nint cpuLibrary)
    {
        Directory = directory;
        Variant = variant;
        _cpu = cpuLibrary;
        nint Base(string name) => NativeLibrary.GetExport(baseLibrary, name);
        Init = (delegate* unmanaged<GgmlInitParams, nint>)Base("ggml_init");
        Free = (delegate* unmanaged<nint, void>)Base("ggml_free");
        TensorOverhead = (delegate* unmanaged<nuint>)Base("ggml_tensor_overhead");
        GraphOverhead = (delegate* unmanaged<nuint>)Base("ggml_graph_overhead");
        NewTensor2D = (delegate* unmanaged<nint, int, long, long, nint>)Base("ggml_new_tensor_2d");
        MulMat = (delegate* unmanaged<nint, nint, nint, nint>)Base("ggml_mul_mat");
        NewGraph = (delegate* unmanaged<nint, nint>)Base("ggml_new_graph");
        BuildForwardExpand = (delegate* unmanaged<nint, nint, void>)Base("ggml_build_forward_expand");
        GetData = (delegate* unmanaged<nint, void*>)Base("ggml_get_data");
        NBytes = (delegate* unmanaged<nint, nuint>)Base("ggml_nbytes");
        Version = (delegate* unmanaged<nint>)Base("ggml_version");
        Commit = (delegate* unmanaged<nint>)Base("ggml_commit");
        BackendGraphCompute = (delegate* unmanaged<nint, nint, int>)Base("ggml_backend_graph_compute");
        BackendFree = (delegate* unmanaged<nint, void>)Base("ggml_backend_free");
        BackendGetDevice = (delegate* unmanaged<nint, nint>)Base("ggml_backend_get_device");
        BackendGetDefaultBufferType = (delegate* unmanaged<nint, nint>)Base("ggml_backend_get_default_buffer_type");
        BackendDevBackendReg = (delegate* unmanaged<nint, nint>)Base("ggml_backend_dev_backend_reg");
        BackendRegGetProcAddress = (delegate* unmanaged<nint, byte*, nint>)Base("ggml_backend_reg_get_proc_address");
        BackendBufferTypeName = (delegate* unmanaged<nint, nint>)Base("ggml_backend_buft_name");
        BackendAllocContextTensorsFromBufferType = (delegate* unmanaged<nint, nint, nint>)Base("ggml_backend_alloc_ctx_tensors_from_buft");
        BackendBufferFree = (delegate* unmanaged<nint, void>)Base("ggml_backend_buffer_free");
        BackendTensorSet = (delegate* unmanaged<nint, void*, nuint, nuint, void>)Base("ggml_backend_tensor_set");

        CpuInit = (delegate* unmanaged<void>)NativeLibrary.GetExport(cpuLibrary, "ggml_cpu_init");
        BackendCpuInit = (delegate* unmanaged<nint>)NativeLibrary.GetExport(cpuLibrary, "ggml_backend_cpu_init");
        BackendCpuSetThreads = (delegate* unmanaged<nint, int, void>)NativeLibrary.GetExport(cpuLibrary, "ggml_backend_cpu_set_n_threads");
        CpuInit();
    }

    public string Directory { get; }

    /// <summary>The SIMD build of libggml-cpu.so in use (avx512, avx2, avx, noavx; arm64 has one).</summary>
    public string Variant { get; }

    public string VersionText => $"{Marshal.PtrToStringUTF8(Version())} ({Marshal.PtrToStringUTF8(Commit())})";

    /// <summary>What the loaded libggml-cpu.so was built for and found on this CPU (<c>ggml_cpu_has_*</c>), the ones set.</summary>
    public IReadOnlyList<string> CpuFeatures()
    {
        string[] names = RuntimeInformation.ProcessArchitecture == Architecture.Arm64
            ? ["neon", "dotprod", "matmul_int8", "sve", "fp16_va", "llamafile"]
            : ["avx", "avx2", "f16c", "fma", "avx_vnni", "avx512", "avx512_vbmi", "avx512_vnni", "avx512_bf16", "amx_int8", "llamafile"];
        var set = new List<string>();
        foreach (string name in names)
        {
            if (HasCpuFeature(name))
            {
                set.Add(name);
            }
        }
        return set;
    }

    public bool HasCpuFeature(string name) =>
        NativeLibrary.TryGetExport(_cpu, "ggml_cpu_has_" + name, out nint has) && ((delegate* unmanaged<int>)has)() != 0;

    /// <summary>
    /// The CPU backend's "extra" buffer type that repacks Q4_0 weights into interleaved blocks at load time
    /// (CPU_REPACK), which llama.cpp uses for model weights by default; null where this build or CPU has none.
    /// </summary>
    public nint RepackBufferType(nint backend)
    {
        nint device = BackendGetDevice(backend);
        nint registry = BackendDevBackendReg(device);
        nint getExtraBufferTypes;
        fixed (byte* name = "ggml_backend_dev_get_extra_bufts\0"u8)
        {
            getExtraBufferTypes = BackendRegGetProcAddress(registry, name);
        }
        if (getExtraBufferTypes == 0)
        {
            return 0;
        }
        // Null-terminated array of buffer types.
        nint* types = ((delegate* unmanaged<nint, nint*>)getExtraBufferTypes)(device);
        for (nint* type = types; type != null && *type != 0; type++)
        {
            if (Marshal.PtrToStringUTF8(BackendBufferTypeName(*type)) == "CPU_REPACK")
            {
                return *type;
            }
        }
        return 0;
    }

    /// <summary>Loads ggml/&lt;rid&gt;/ from the output folder: libggml-base.so, then the chosen libggml-cpu.so.</summary>
    /// <param name="requestedVariant">An x64 SIMD build (avx512, avx2, avx, noavx), or null for the best this CPU runs.</param>
    public static GgmlLibrary Load(string? requestedVariant)
    {
        if (!OperatingSystem.IsLinux())
        {
            throw new PlatformNotSupportedException("Only the Linux builds of ggml are copied into the benchmark's output.");
        }
        (string rid, string variant, string cpuFolder) = RuntimeInformation.ProcessArchitecture switch
        {
            Architecture.X64 => ("linux-x64", requestedVariant ?? BestX64Variant(), requestedVariant ?? BestX64Variant()),
            Architecture.Arm64 when requestedVariant is null => ("linux-arm64", "arm64", ""),
            Architecture.Arm64 => throw new ArgumentException($"There is one arm64 build of ggml; '{requestedVariant}' names an x64 one."),
            Architecture other => throw new PlatformNotSupportedException($"No ggml build is copied for {other}."),
        };
        string directory = Path.Combine(AppContext.BaseDirectory, "ggml", rid);
        string basePath = Path.Combine(directory, "libggml-base.so");
        string cpuPath = Path.Combine(directory, cpuFolder, "libggml-cpu.so");
        foreach (string path in new[] { basePath, cpuPath })
        {
            if (!File.Exists(path))
            {
                throw new FileNotFoundException($"{path} is missing (the benchmark project copies it from the LLamaSharp.Backend.Cpu package).", path);
            }
        }
        nint baseLibrary = NativeLibrary.Load(basePath);
        nint cpuLibrary = NativeLibrary.Load(cpuPath);
        return new GgmlLibrary(Path.GetDirectoryName(cpuPath)!, variant, baseLibrary, cpuLibrary);
    }

    // The instruction sets each build of LLamaSharp's libggml-cpu.so is compiled for (ggml's GGML_AVX512 adds F, CD, VL, DQ, BW).
    private static string BestX64Variant() =>
        Avx512F.IsSupported && Avx512CD.IsSupported && Avx512F.VL.IsSupported && Avx512DQ.IsSupported && Avx512BW.IsSupported ? "avx512"
        : Avx2.IsSupported && Fma.IsSupported ? "avx2"
        : Avx.IsSupported ? "avx"
        : "noavx";
}
