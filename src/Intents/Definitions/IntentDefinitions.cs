using System.Security.Cryptography;
using System.Text;
using EdgeSlm.Intents.Descriptions;
using EdgeSlm.Intents.Examples;
using EdgeSlm.Intents.Templates;

namespace EdgeSlm.Intents.Definitions;

/// <summary>
/// What the user defined: Home Assistant style templates (a YAML file or folder), labelled example utterances
/// (JSONL, as in the shared datasets), or both. <see cref="ContentHash"/> changes whenever any of it changes.
/// </summary>
public sealed class IntentDefinitions
{
    private IntentDefinitions(IntentLibrary library, IReadOnlyList<IntentExample> examples, string contentHash, string source, IReadOnlyList<IntentDescription>? described = null)
    {
        Library = library;
        Examples = examples;
        ContentHash = contentHash;
        Source = source;
        foreach (IntentExample example in examples)
        {
            IntentLibrary.ValidateIntentName(example.Intent, source);
        }
        var descriptions = new Dictionary<string, IntentDescription>(library.Descriptions, StringComparer.Ordinal);
        foreach (IntentDescription description in described ?? [])
        {
            IntentLibrary.ValidateIntentName(description.Intent, source);
            descriptions[description.Intent] = descriptions.TryGetValue(description.Intent, out IntentDescription? earlier) ? earlier.Merge(description) : description;
        }
        Descriptions = descriptions;
        IntentNames = library.IntentNames.Concat(examples.Select(e => e.Intent)).Concat(descriptions.Keys)
            .Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToArray();
        if (IntentNames.Count == 0)
        {
            throw new IntentFileException($"{source}: defines no intents");
        }
    }

    public IntentLibrary Library { get; }

    /// <summary>Labelled utterances given as they are (not expanded from templates).</summary>
    public IReadOnlyList<IntentExample> Examples { get; }

    public IReadOnlyList<string> IntentNames { get; }

    /// <summary>What intents and slots mean, where the files say (YAML <c>description</c>, JSONL lines without <c>text</c>).</summary>
    public IReadOnlyDictionary<string, IntentDescription> Descriptions { get; }

    /// <summary>SHA-256 (hex) of every file's name and bytes: keys the trained head.</summary>
    public string ContentHash { get; }

    public string Source { get; }

    /// <summary>Loads files and folders: <c>*.jsonl</c> are example files, everything else hassil YAML.</summary>
    /// <exception cref="IntentFileException">A file is missing, malformed, or defines bad intent names.</exception>
    public static IntentDefinitions Load(params string[] paths)
    {
        var yaml = new List<string>();
        var examples = new List<IntentExample>();
        var descriptions = new List<IntentDescription>();
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (string path in paths)
        {
            if (!File.Exists(path) && !Directory.Exists(path))
            {
                throw new IntentFileException($"intents file {path} does not exist");
            }
            IEnumerable<string> files = Directory.Exists(path)
                ? Directory.EnumerateFiles(path, "*.*", SearchOption.AllDirectories).Where(f => f.EndsWith(".yaml", StringComparison.Ordinal) || f.EndsWith(".jsonl", StringComparison.Ordinal)).Order(StringComparer.Ordinal)
                : [path];
            foreach (string file in files)
            {
                hash.AppendData(Encoding.UTF8.GetBytes(Path.GetFileName(file) + "\n"));
                hash.AppendData(File.ReadAllBytes(file));
                if (file.EndsWith(".jsonl", StringComparison.OrdinalIgnoreCase))
                {
                    try
                    {
                        examples.AddRange(IntentExample.ReadJsonLines(file, descriptions));
                    }
                    catch (FormatException e)
                    {
                        throw new IntentFileException(e.Message);
                    }
                }
                else if (!Directory.Exists(path))
                {
                    yaml.Add(file);
                }
            }
            if (Directory.Exists(path))
            {
                yaml.Add(path);
            }
        }
        IntentLibrary library = yaml.Count > 0 ? IntentLibrary.Load(yaml.ToArray()) : IntentLibrary.Parse("{}", "empty");
        return new IntentDefinitions(library, examples, Convert.ToHexString(hash.GetHashAndReset()), string.Join(", ", paths), descriptions);
    }

    /// <summary>One YAML intents file given as text (for example a retained MQTT message).</summary>
    public static IntentDefinitions FromYaml(string yaml, string source) =>
        new(IntentLibrary.Parse(yaml, source), [], Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(yaml))), source);

    /// <summary>
    /// Training utterances: the examples as given plus each template expanded (seeded, at most
    /// <paramref name="perTemplate"/> distinct sentences per template). Templates that refer to undefined lists or
    /// rules are skipped and listed in <paramref name="problems"/>.
    /// </summary>
    public List<IntentExample> TrainingExamples(int perTemplate, int seed, List<string> problems)
    {
        var result = new List<IntentExample>(Examples);
        result.AddRange(TemplateExpander.Expand(Library, perTemplate, seed, problems));
        return result;
    }
}
