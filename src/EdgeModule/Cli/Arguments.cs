namespace EdgeSlm.EdgeModule.Cli;

/// <summary>A command's arguments: <c>--name value</c> options, <c>--flag</c> switches and positional words.</summary>
internal sealed class Arguments
{
    private readonly Dictionary<string, string> _options = new(StringComparer.Ordinal);
    private readonly HashSet<string> _flags = new(StringComparer.Ordinal);
    private readonly HashSet<string> _read = new(StringComparer.Ordinal);

    public Arguments(IEnumerable<string> args, IReadOnlySet<string> flagNames)
    {
        var positional = new List<string>();
        using IEnumerator<string> e = args.GetEnumerator();
        while (e.MoveNext())
        {
            string arg = e.Current;
            if (arg == "--")
            {
                while (e.MoveNext()) positional.Add(e.Current);
                break;
            }
            if (arg.StartsWith("--", StringComparison.Ordinal) || (arg.StartsWith('-') && arg.Length == 2 && char.IsLetter(arg[1])))
            {
                string name = arg.TrimStart('-');
                int equals = name.IndexOf('=');
                if (equals > 0)
                {
                    _options[name[..equals]] = name[(equals + 1)..];
                }
                else if (flagNames.Contains(name))
                {
                    _flags.Add(name);
                }
                else if (e.MoveNext())
                {
                    _options[name] = e.Current;
                }
                else
                {
                    throw new UsageException($"option --{name} needs a value");
                }
            }
            else
            {
                positional.Add(arg);
            }
        }
        Positional = positional;
    }

    public IReadOnlyList<string> Positional { get; }

    /// <summary>Every option given, read or not.</summary>
    public IEnumerable<string> OptionNames => _options.Keys.ToArray();

    public string? Option(string name)
    {
        _read.Add(name);
        return _options.GetValueOrDefault(name);
    }

    public string RequiredOption(string name) => Option(name) ?? throw new UsageException($"--{name} is required");

    public int IntOption(string name, int fallback, int min, int max)
    {
        string? text = Option(name);
        if (text is null)
        {
            return fallback;
        }
        return int.TryParse(text, out int value) && value >= min && value <= max
            ? value
            : throw new UsageException($"--{name} must be a whole number from {min} to {max}, not '{text}'");
    }

    public bool Flag(string name) => _flags.Contains(name);

    /// <summary>Fails on options the command did not ask for, so a typo is an error rather than ignored.</summary>
    public void RejectUnknown()
    {
        string? unknown = _options.Keys.FirstOrDefault(k => !_read.Contains(k));
        if (unknown is not null)
        {
            throw new UsageException($"unknown option --{unknown}");
        }
    }
}

/// <summary>The command line was wrong: printed as one line, exit code 2.</summary>
internal sealed class UsageException(string message) : Exception(message);
